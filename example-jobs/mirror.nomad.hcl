# An air-gapped node: the job names a Docker Hub image, and the plugin's
# registry_config_dir holds docker.io/hosts.toml that sends every pull to a
# local mirror, for example:
#
#   server = "http://127.0.0.1:5000"
#   [host."http://127.0.0.1:5000"]
#     capabilities = ["pull", "resolve"]
variable "image" {
  type    = string
  default = "docker.io/library/busybox:mirror"
}

job "mirror" {
  type = "batch"

  group "app" {
    task "app" {
      driver = "containerd"

      config {
        image      = var.image
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
