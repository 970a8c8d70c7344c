# Tasks that outlive restarts under them. A web server on the driver's
# bridge network with a mapped port logs a heartbeat; two workers each exit
# with the code written to their allocation's alloc/exit-code file. When the
# plugin, the Nomad agent or containerd restarts, the driver reattaches to
# the same processes (logs and ports keep working, no task restarts), and a
# task that exits meanwhile reports its exit once. Restarts and
# rescheduling are off, so that every exit the driver reports is final.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "restarts" {
  type = "service"

  reschedule {
    attempts  = 0
    unlimited = false
  }

  group "web" {
    restart {
      attempts = 0
      mode     = "fail"
    }

    network {
      port "http" {
        to = 8080
      }
    }

    task "web" {
      driver = "containerd"

      config {
        image        = var.image
        network_mode = "bridge"
        ports        = ["http"]
        command      = "sh"
        args = ["-c", <<-EOT
          mkdir -p /tmp/www
          echo "hello from web" > /tmp/www/index.html
          httpd -p 8080 -h /tmp/www
          i=0
          while true; do echo "beat-$i"; i=$((i+1)); sleep 0.5; done
        EOT
        ]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }

  group "worker" {
    count = 2

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "worker" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args = ["-c", <<-EOT
          echo started
          until [ -s /alloc/exit-code ]; do sleep 0.2; done
          code=$(cat /alloc/exit-code)
          echo "exiting with $code"
          exit "$code"
        EOT
        ]
      }

      resources {
        cpu    = 50
        memory = 16
      }
    }
  }
}
