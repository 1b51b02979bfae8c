module corunpeers/go

go 1.27
