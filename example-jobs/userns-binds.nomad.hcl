# A task in a user namespace of its own (userns_mode = "auto") with Nomad's
# directories and one host directory it owns: what its root writes in
# alloc/data and in the idmapped bind belongs to the host's root, as
# without a user namespace, while the same host directory bound as it is
# stays the host's. Needs the plugin's volumes { enabled = true } and, when
# allowed_host_paths is set, a host_dir under one of its prefixes holding a
# root-owned file "input".
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

variable "host_dir" {
  type    = string
  default = "/srv/shared"
}

job "userns-binds" {
  type = "batch"

  group "userns-binds" {
    task "userns-binds" {
      driver = "containerd"

      config {
        image       = var.image
        userns_mode = "auto"
        command     = "sh"
        args = ["-c", <<-EOT
          echo "uid $(id -u)"
          echo by-task > /alloc/data/userns-output
          echo by-task > /data/owned/userns-output
          echo x >> /data/host/input 2>/dev/null || echo host-file-refused
        EOT
        ]

        mount {
          type   = "bind"
          source = var.host_dir
          target = "/data/owned"
          idmap  = true
        }
        volumes = ["${var.host_dir}:/data/host"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
