# A batch job: runs once, prints a greeting and where it runs, and exits 0.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "hello" {
  type = "batch"

  group "hello" {
    task "hello" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = ["-c", "echo \"Hello from $NOMAD_TASK_NAME in allocation $NOMAD_ALLOC_ID\"; echo \"running as $(id -un) on $(hostname), kernel $(uname -r)\""]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
