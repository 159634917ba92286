// Command testreport reads `go test -json` events on stdin, prints the
// usual one line per package as the run goes, and when anything failed
// prints, at the end, the whole output of every failed test (and of any
// package that failed to build or failed outside a test), so that a CI
// log shows why without -v. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./scripts/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
	Elapsed    float64
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	outputs := map[string]*strings.Builder{} // "pkg test" → output
	var failed []string
	seenFail := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			// Not an event: a build error printed by go itself.
			fmt.Fprintln(out, string(line))
			if len(line) > 0 {
				seenFail = seenFail || strings.Contains(string(line), "FAIL") || strings.Contains(string(line), "error")
			}
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
			b := outputs["build "+e.ImportPath]
			if b == nil {
				b = &strings.Builder{}
				outputs["build "+e.ImportPath] = b
			}
			b.WriteString(e.Output)
		case "build-fail":
			seenFail = true
			failed = append(failed, "build "+e.ImportPath)
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			b.WriteString(e.Output)
		case "fail":
			seenFail = true
			failed = append(failed, key)
			if e.Test == "" {
				fmt.Fprintf(out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
			delete(outputs, key)
		case "skip":
			if e.Test == "" {
				fmt.Fprintf(out, "?   \t%s\t[no test files]\n", e.Package)
			}
			delete(outputs, key)
		}
	}
	if !seenFail {
		return 0
	}
	sort.Strings(failed)
	fmt.Fprintf(out, "\n==== %d failure(s); the output of each follows ====\n", len(failed))
	for _, key := range failed {
		fmt.Fprintf(out, "\n---- %s ----\n", key)
		if b := outputs[key]; b != nil {
			fmt.Fprint(out, b.String())
		}
	}
	return 1
}
