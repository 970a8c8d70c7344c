# A task that says nothing about networks: it gets its own network
# namespace on the driver's built-in bridge network (rkt's "default"
# network), NAT to the outside and the job's ports mapped in from the host.
# The host's network is used only when the job (network_mode = "host",
# host_network = true) or the operator (default_network_mode) asks for it.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "default-network" {
  type = "service"

  group "web" {
    network {
      port "http" {
        to = 8080
      }
    }

    task "web" {
      driver = "containerd"

      config {
        image   = var.image
        ports   = ["http"]
        command = "sh"
        args = ["-c", <<-EOT
          mkdir -p /tmp/www
          echo "hello from $(ip -o -4 addr show eth0 | awk '{print $4}')" > /tmp/www/index.html
          exec httpd -f -p 8080 -h /tmp/www
        EOT
        ]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
