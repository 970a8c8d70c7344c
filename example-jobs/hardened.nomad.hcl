# A hardened service: a user namespace of its own (its root is an
# unprivileged host ID), read-only root filesystem, no capabilities, no new
# privileges, and the operator's seccomp profile on top. The profile
# (example-jobs/seccomp/hardened.json refuses mount, ptrace, namespaces,
# keyrings, kernel modules, device nodes and fifos, io_uring, ...) must lie
# under the plugin's allowed_seccomp_profiles, e.g.
#
#   plugin "containerd" {
#     config {
#       allowed_seccomp_profiles = ["/etc/nomad.d/seccomp"]
#       no_new_privileges        = true   # optional: enforce it for every task
#     }
#   }
#
# The task reports what it holds, then serves /local/www on its port, on
# the driver's bridge network (the default).
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

variable "seccomp_profile" {
  type    = string
  default = "/etc/nomad.d/seccomp/hardened.json"
}

job "hardened" {
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
        image             = var.image
        command           = "sh"
        args              = ["-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; echo uid_map $(cat /proc/self/uid_map); touch /x 2>/dev/null || echo rootfs read-only; mkfifo /local/fifo || true; exec httpd -f -p 8080 -h /local/www"]
        ports             = ["http"]
        userns_mode       = "auto"
        readonly_rootfs   = true
        no_new_privileges = true
        cap_drop          = ["all"]
        seccomp_profile   = var.seccomp_profile

        mount {
          type   = "tmpfs"
          target = "/tmp"
          tmpfs_options {
            size = 4194304
          }
        }
      }

      template {
        data        = "hardened\n"
        destination = "local/www/index.html"
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
