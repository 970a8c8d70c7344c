# A long-running service: logs a heartbeat, reloads on SIGHUP, stops
# cleanly on SIGINT (kill_signal) and has a script check that runs through
# the driver's exec.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "service" {
  type = "service"

  group "web" {
    task "web" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args    = ["-c", "trap 'echo reloaded' HUP; trap 'echo bye; exit 0' INT; i=0; while true; do echo beat-$i; i=$((i+1)); sleep 1; done"]
        cap_drop = ["all"]
        cap_add  = ["chown", "kill", "setuid", "setgid"]
      }

      kill_signal  = "SIGINT"
      kill_timeout = "10s"

      template {
        data        = "greeting = hello from {{ env \"NOMAD_TASK_NAME\" }}\n"
        destination = "local/app.conf"
      }

      resources {
        cpu        = 100
        memory     = 32
        memory_max = 64
      }
    }
  }
}
