# Four copies of a web service spread evenly over the cluster's client
# nodes. Each copy runs on its node's containerd, on the driver's bridge
# network with a port map, and registers in Nomad's own service catalog
# twice: with the container's address and port (address_mode = "driver")
# and with the node's address and the mapped host port (address_mode =
# "host"). Each answers with its allocation ID and node name. Draining a
# node moves its copies to the others, two at a time.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "cluster-spread" {
  type = "service"

  # even shares per node: with two clients, two copies on each
  spread {
    attribute = "${node.unique.name}"
  }

  group "web" {
    count = 4

    # a drain replaces both copies of a node at once; a replacement counts
    # as healthy once its task has run for 2s (there are no checks)
    migrate {
      max_parallel     = 2
      health_check     = "task_states"
      min_healthy_time = "2s"
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
          echo "hello from $NOMAD_ALLOC_ID on $NODE_NAME" > /tmp/www/index.html
          trap 'exit 0' TERM
          httpd -f -p 8080 -h /tmp/www &
          wait
        EOT
        ]
      }

      env {
        NODE_NAME = "${node.unique.name}"
      }

      service {
        provider     = "nomad"
        name         = "cluster-web"
        port         = "http"
        address_mode = "driver"
      }

      service {
        provider     = "nomad"
        name         = "cluster-web-host"
        port         = "http"
        address_mode = "host"
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
