# A web service on the driver's own bridge network: Nomad allocates a
# dynamic and a static port, the driver maps them to the container's 8080
# and 9090 through CNI, and the service registration advertises the
# container's address (address_mode = "driver") in Nomad's own service
# catalog.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

variable "static_port" {
  type    = number
  default = 28080
}

job "bridge-ports" {
  type = "service"

  group "web" {
    network {
      port "http" {
        to = 8080
      }
      port "admin" {
        static = var.static_port
        to     = 9090
      }
    }

    task "web" {
      driver = "containerd"

      config {
        image        = var.image
        network_mode = "bridge"
        ports        = ["http", "admin"]
        hostname     = "web"
        command      = "sh"
        args = ["-c", <<-EOT
          mkdir -p /tmp/www
          echo "hello from $(hostname) at $(ip -o -4 addr show eth0 | awk '{print $4}')" > /tmp/www/index.html
          httpd -p 9090 -h /tmp/www
          exec httpd -f -p 8080 -h /tmp/www
        EOT
        ]
      }

      # address_mode = "driver": the container's address and port (8080)
      service {
        provider     = "nomad"
        name         = "web-driver"
        port         = "http"
        address_mode = "driver"
      }

      # address_mode = "auto" (the default) follows the driver too
      service {
        provider = "nomad"
        name     = "web-auto"
        port     = "http"
      }

      # address_mode = "host": the host's address and the host port
      service {
        provider     = "nomad"
        name         = "web-host"
        port         = "http"
        address_mode = "host"
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
