# A private registry: TLS with the registry's CA (set by the operator in the
# plugin's registry_config_dir, containerd's hosts.toml tree) and basic auth
# from the task's auth block. Credentials never reach logs or events; in
# production put them in Nomad Variables or Vault and use a template.
variable "image" {
  type    = string
  default = "registry.example.com:5000/team/app:1"
}

variable "username" {
  type    = string
  default = "team"
}

variable "password" {
  type    = string
  default = ""
}

job "private-registry" {
  type = "batch"

  group "app" {
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "app" {
      driver = "containerd"

      config {
        image      = var.image
        force_pull = true
        command    = "echo"
        args       = ["pulled with credentials"]

        auth {
          username = var.username
          password = var.password
        }
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
