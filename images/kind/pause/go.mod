module modelops.dev/pause

go 1.22
