# A batch job whose image is signed keyless in CI: no key to distribute,
# the plugin's trust rule for the image's prefix names the identity that
# must have signed (the release workflow of the repository, as the
# short-lived Fulcio certificate says) and the Sigstore trusted root
# (trusted_root.json) its certificate and transparency log entry are
# checked against, offline:
#
#   trust {
#     rule {
#       prefix       = "registry.example.com/payments/"
#       trusted_root = "/etc/nomad.d/sigstore/trusted_root.json"
#       identity {
#         issuer         = "https://token.actions.githubusercontent.com"
#         subject_regexp = "^https://github\\.com/example/payments/\\.github/workflows/release\\.yml@refs/tags/v"
#       }
#     }
#   }
#
# An image signed by another workflow, or not logged, fails before any
# container exists.
variable "image" {
  type    = string
  default = "registry.example.com/payments/api:1"
}

job "keyless" {
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
        image   = var.image
        command = "echo"
        args    = ["running a keyless-signed image"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
