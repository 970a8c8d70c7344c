# A group network namespace made by the driver, for tasks in user
# namespaces of their own. With `network { mode = "bridge" }` the driver
# creates the group's namespace (no pause container), lets every process in
# it bind ports below 1024, and Nomad attaches it to its bridge and maps the
# group's ports. Both tasks join it: "web" serves on port 80 as the root of
# its own user namespace (an unprivileged ID on the host), and "peer"
# reaches it on 127.0.0.1.
#
# The group's hostname: Nomad accepts `hostname` here because the driver
# makes the namespace, and hands it to every task of the group. A Nomad
# client of 1.6.1 leaves it out of what it sends to a plugin (agents with
# hashicorp/nomad#27273 send it), so each task also sets its `hostname`.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "group-bridge-userns" {
  type = "service"

  group "web" {
    network {
      mode     = "bridge"
      hostname = "web-1"
      port "http" {
        to = 80
      }
    }

    service {
      provider = "nomad"
      name     = "group-userns-web"
      port     = "http"
    }

    task "web" {
      driver = "containerd"

      config {
        image       = var.image
        hostname    = "web-1"
        userns_mode = "auto"
        command     = "sh"
        args        = ["-c", "mkdir -p /tmp/www && echo hello from $(hostname) as uid $(id -u) > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }

    task "peer" {
      driver = "containerd"

      config {
        image       = var.image
        hostname    = "web-1"
        userns_mode = "auto"
        command     = "sleep"
        args        = ["3600"]
      }

      resources {
        cpu    = 50
        memory = 16
      }
    }
  }
}
