# Host networking (host_network = true as in Roblox's driver, or
# network_mode = "host"): the task listens on the port Nomad allocated, on
# the host's interfaces. Without it a task gets the built-in bridge network.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "host-network" {
  type = "service"

  group "web" {
    network {
      port "http" {}
    }

    service {
      provider = "nomad"
      name     = "host-web"
      port     = "http"
    }

    task "web" {
      driver = "containerd"

      config {
        image        = var.image
        host_network = true
        command      = "sh"
        args         = ["-c", "mkdir -p /tmp/www && echo hello from the host network > /tmp/www/index.html && exec httpd -f -p $NOMAD_PORT_http -h /tmp/www"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
