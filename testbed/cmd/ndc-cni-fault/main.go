// Command ndc-cni-fault is a CNI plugin for fault tests. Chained after
// other plugins it passes their result on; it fails ADD while the file
// named by its "failAdd" config field exists, and DEL while "failDel"
// exists, with an error naming the command and the file. While the file
// named by "addDelay" exists, ADD first sleeps for the Go duration it
// holds, as a slow plugin chain would.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

type conf struct {
	CNIVersion string          `json:"cniVersion"`
	PrevResult json.RawMessage `json:"prevResult,omitempty"`
	FailAdd    string          `json:"failAdd"`
	FailDel    string          `json:"failDel"`
	AddDelay   string          `json:"addDelay,omitempty"`
}

var supported = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

func main() {
	cmd := os.Getenv("CNI_COMMAND")
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("1.0.0", fmt.Sprintf("ndc-cni-fault: failed to read the config: %v", err))
	}
	var c conf
	if cmd != "VERSION" {
		if err := json.Unmarshal(stdin, &c); err != nil {
			fail("1.0.0", fmt.Sprintf("ndc-cni-fault: bad config: %v", err))
		}
	}
	switch cmd {
	case "VERSION":
		out, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "supportedVersions": supported})
		os.Stdout.Write(out)
	case "ADD":
		delay(c)
		refuse(c, "ADD", c.FailAdd)
		if len(c.PrevResult) == 0 {
			fail(c.CNIVersion, "ndc-cni-fault: must be chained after a plugin that makes an interface")
		}
		os.Stdout.Write(c.PrevResult)
	case "DEL":
		refuse(c, "DEL", c.FailDel)
	case "CHECK", "STATUS", "GC":
	default:
		fail(c.CNIVersion, fmt.Sprintf("ndc-cni-fault: unknown CNI_COMMAND %q", cmd))
	}
}

// delay sleeps for the duration in c.AddDelay's file, when it exists.
func delay(c conf) {
	if c.AddDelay == "" {
		return
	}
	data, err := os.ReadFile(c.AddDelay)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		fail(c.CNIVersion, fmt.Sprintf("ndc-cni-fault: addDelay: %v", err))
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(data)))
	if err != nil {
		fail(c.CNIVersion, fmt.Sprintf("ndc-cni-fault: addDelay %s: %v", c.AddDelay, err))
	}
	time.Sleep(d)
}

// refuse fails cmd while file exists.
func refuse(c conf, cmd, file string) {
	if file == "" {
		return
	}
	if _, err := os.Stat(file); err == nil {
		fail(c.CNIVersion, fmt.Sprintf("ndc-cni-fault: %s refused while %s exists", cmd, file))
	}
}

// fail writes a CNI error result and exits 1.
func fail(version, msg string) {
	if version == "" {
		version = "1.0.0"
	}
	out, _ := json.Marshal(map[string]any{"cniVersion": version, "code": 999, "msg": msg})
	os.Stdout.Write(out)
	os.Exit(1)
}
