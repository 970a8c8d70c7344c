package driver

// nameChar reports whether r may appear in the names the driver checks:
// containerd namespaces and identifiers, CNI conflist names and (without
// '_') hostnames. Each caller keeps its own error message.
func nameChar(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '.' || r == '_' || r == '-'
}

// validName reports whether n is a non-empty name of letters, digits, '.',
// '-' and '_'.
func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if !nameChar(r) {
			return false
		}
	}
	return true
}
