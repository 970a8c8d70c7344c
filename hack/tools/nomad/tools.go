//go:build tools

// Package tools pins the Nomad agent built by hack/deps.sh
// (`go build github.com/hashicorp/nomad` in this directory).
package tools

import _ "github.com/hashicorp/nomad"
