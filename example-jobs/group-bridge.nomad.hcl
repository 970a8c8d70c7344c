# Nomad's group network namespace (network mode "bridge"): Nomad makes the
# namespace and maps the group's port; the task joins it and the driver
# runs no CNI of its own.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "group-bridge" {
  type = "service"

  group "web" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }

    service {
      provider = "nomad"
      name     = "group-web"
      port     = "http"
    }

    task "web" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = ["-c", "mkdir -p /tmp/www && echo hello from the group namespace > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
