# exec2-style host binds: needs the plugin's volumes { enabled = true } and,
# when allowed_host_paths is set, a host_dir under one of its prefixes.
# With userns_mode = "auto" the task's root is an unprivileged host ID:
# host_dir must then let others write (mode 1777, as /tmp).
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

variable "host_dir" {
  type    = string
  default = "/srv/shared"
}

job "binds" {
  type = "batch"

  group "binds" {
    task "binds" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = ["-c", "cat /data/ro/input; echo written-by-task > /data/rw/output; touch /data/ro/x 2>/dev/null || echo read-only-refused"]

        bind = {
          (var.host_dir) = "/data/rw"
        }
        bind_read_only = {
          (var.host_dir) = "/data/ro"
        }
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
