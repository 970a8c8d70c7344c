# A GPU job as written for Nomad's docker driver: the device block asks
# Nomad's nvidia device plugin for a GPU, and the driver gives the task
# that GPU's CDI device (nvidia.com/gpu=<uuid>) from the node's CDI specs
# (`nvidia-ctk cdi generate`), with no NVIDIA container runtime. The
# plugin's device nodes, mounts and environment reach the task too.
# e2e runs it with a test device plugin standing in for nvidia's, over
# fake device nodes.
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "gpu" {
  type = "batch"

  group "gpu" {
    task "gpu" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args = ["-c", <<-EOT
          echo "reserved GPUs: $NVIDIA_VISIBLE_DEVICES"
          ls -l /dev
          env | grep -e GPU -e NVIDIA | sort
          if command -v nvidia-smi >/dev/null; then nvidia-smi -L; fi
          cat /var/run/ndc-fake/* 2>/dev/null || true
          EOT
        ]
      }

      resources {
        cpu    = 100
        memory = 32

        device "nvidia/gpu" {
          count = 1
        }
      }
    }
  }
}
