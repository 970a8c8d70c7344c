# An air-gapped node: the job names a Docker Hub image, and the operator
# sends docker.io pulls to a local mirror in the plugin's
# registry_config_dir (containerd's hosts.toml tree), for example
# /etc/containerd/certs.d/docker.io/hosts.toml:
#
#   server = "https://registry-1.docker.io"
#
#   [host."http://127.0.0.1:5000"]
#     capabilities = ["pull", "resolve"]
#
# Hosts are tried in order before the server, so the mirror answers and
# Docker Hub is never reached. Plain HTTP is allowed to a host named with
# http://, such as one on loopback; for a mirror on the network give it TLS
# and a `ca` in its host entry. force_pull makes every start resolve the tag
# through the mirror again.
variable "tag" {
  type    = string
  default = "1.36"
}

job "mirror" {
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
        image      = "docker.io/library/busybox:${var.tag}"
        force_pull = true
        command    = "echo"
        args       = ["pulled through the mirror"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
