// Command pulumi-resource-command is the lab-only stand-in for the Pulumi command provider plugin
// (see lab/providers/README.md): it implements exactly the resources kubeha uses.
package main

import (
	"kubeha.local/lab/providers/internal/commandprov"
	fw "kubeha.local/lab/providers/internal/framework"
)

func main() {
	fw.Serve("command", commandprov.Version, commandprov.Resources()...)
}
