# Reserved cores: the "pinned" task reserves a core (resources.cores) and
# runs on it alone; the "shared" task, like every task of the driver without
# cores, runs on the node's other cores, and gets the core back as soon as
# the reservation ends (run the job again with -var pinned=0). Each task
# prints the cores it may run on.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

variable "pinned" {
  type    = number
  default = 1
}

locals {
  # print the cores the task may run on, then stay up
  show_cores = ["-c", "grep Cpus_allowed_list /proc/self/status; exec sleep 3600"]
}

job "cores" {
  type = "service"

  group "shared" {
    task "shared" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = local.show_cores
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }

  group "pinned" {
    count = var.pinned

    task "pinned" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = local.show_cores
      }

      resources {
        cores  = 1
        memory = 32
      }
    }
  }
}
