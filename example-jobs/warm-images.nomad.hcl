# Warm every node before a rollout: Nomad has no pre-pull, so a rolling
# update waits on a pull on each node in turn. This sysbatch job runs once
# on every client where the containerd driver is healthy and pulls (and verifies,
# under the plugin's trust rules) each image with pull_only: no container,
# snapshot or network is made, the task exits 0, and the image is kept
# from image GC for gc.image_delay after it ends (set that longer than the
# time to the rollout, or pin the image). Run it, wait for it to complete,
# then roll out:
#
#   nomad job run -var 'images=["registry.example.com/team/web:1.5"]' warm-images.nomad.hcl
#   nomad job status warm-images     # every allocation complete
#   nomad job run web.nomad.hcl      # its starts find the image on the node
variable "images" {
  type    = list(string)
  default = ["docker.io/library/busybox:1.36"]
}

job "warm-images" {
  type = "sysbatch"

  group "warm" {
    restart {
      attempts = 2
      delay    = "10s"
      mode     = "fail"
    }

    dynamic "task" {
      for_each = var.images
      labels   = ["warm-${task.key}"]

      content {
        driver = "containerd"

        config {
          image     = task.value
          pull_only = true
        }

        resources {
          cpu    = 50
          memory = 16
        }
      }
    }
  }
}
