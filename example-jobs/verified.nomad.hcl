# A batch job whose image must carry a cosign signature by a key the
# operator trusts: the plugin's `trust` block has a rule for the image's
# prefix with policy "enforce", and trust_prefix (rkt's) makes the job
# insist on it. An unsigned image under that prefix fails before any
# container exists.
variable "image" {
  type    = string
  default = "registry.example.com/team/app:1"
}

variable "trust_prefix" {
  type    = string
  default = "registry.example.com/team/"
}

job "verified" {
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
        image        = var.image
        trust_prefix = var.trust_prefix
        command      = "echo"
        args         = ["running a verified image"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
