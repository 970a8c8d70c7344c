# Lazy pulling: the task starts before its image is fetched. It needs the
# plugin's snapshotter = "stargz", the stargz snapshotter running as
# containerd's proxy plugin "stargz" (README, "Lazy pulling"), and an
# eStargz image, for example one converted with
#
#   nerdctl image convert --estargz --oci registry.example.com/team/app:1 \
#     registry.example.com/team/app:1-esgz
#
# The task reads the first 4 KiB of one file: only the chunks holding what
# it reads (and the image's tables of contents) come from the registry.
variable "image" {
  type = string
}

variable "file" {
  type    = string
  default = "/bin/sh"
}

job "lazy" {
  type = "batch"

  group "app" {
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "app" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = ["-c", "head -c 4096 ${var.file} | wc -c; echo read a little of a lazily pulled image"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
