// Stores every key of a memshift placement job through gomemcache.
// Usage: GOPATH=/usr/share/gocode GO111MODULE=off go run store.go JOB.keys host:port...
// JOB.keys holds one key per line.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/bradfitz/gomemcache/memcache"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	client := memcache.New(os.Args[2:]...)
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1024), 1024*1024)
	stored, failed := 0, 0
	for scanner.Scan() {
		if err := client.Set(&memcache.Item{Key: scanner.Text(), Value: []byte("v")}); err != nil {
			failed++
		} else {
			stored++
		}
	}
	fmt.Printf("{\"stored\": %d, \"failed\": %d}\n", stored, failed)
}
