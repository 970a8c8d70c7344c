# A task whose output the driver collects itself, with no logmon process:
# the agent's plugin block sets
#
#   logging {
#     collector     = "driver"
#     max_file_size = 1
#   }
#
# The task prints 200000 numbered lines in bursts (about 1.3 MB, so the
# 1 MB files rotate), then, once alloc/more exists, 100000 more, and idles.
# `nomad alloc logs` and `-f` show every line once, also when the plugin is
# killed while the task prints, or the agent and the plugin are down while
# it prints the rest.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "logs" {
  type = "service"

  group "logs" {
    restart {
      attempts = 0
      mode     = "fail"
    }

    task "app" {
      driver = "containerd"

      config {
        image        = var.image
        network_mode = "host"
        command      = "sh"
        args         = ["-c", "for i in $(seq 0 19); do seq $((i*10000+1)) $((i*10000+10000)); sleep 0.2; done; until [ -e /alloc/more ]; do sleep 0.2; done; seq 200001 300000; exec sleep 3600"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
