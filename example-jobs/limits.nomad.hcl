# Process limits under the names docker and Roblox jobs use: a larger
# /dev/shm, ulimits, an OOM score adjustment, tini as PID 1, a hard CPU
# limit (a CFS quota of the task's cpu share) and supplementary groups.
# `init = true` needs the plugin's init_path (default
# /usr/bin/tini-static, from Debian's tini package). The task prints what
# it got and sleeps; its CFS quota is in its cgroup on the host
# (cpu.cfs_quota_us on cgroup v1, cpu.max on v2).
variable "image" {
  type    = string
  default = "docker.io/library/busybox:1.36"
}

job "limits" {
  type = "batch"

  group "app" {
    task "app" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args = ["-c", <<-EOT
          echo "pid 1: $(tr '\0' ' ' < /proc/1/cmdline)"
          echo "shm: $(grep ' /dev/shm ' /proc/mounts)"
          echo "nofile: $(ulimit -Sn):$(ulimit -Hn) nproc: $(ulimit -Su)"
          echo "oom_score_adj: $(cat /proc/self/oom_score_adj)"
          echo "groups: $(id -G)"
          exec sleep 3600
          EOT
        ]

        init           = true
        shm_size       = "128m" # or 134217728 (bytes)
        oom_score_adj  = 500
        cpu_hard_limit = true
        cpu_cfs_period = 50000
        group_add      = ["nogroup", "4242"]

        ulimit {
          nofile = "1024:2048"
          nproc  = "256"
        }
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
