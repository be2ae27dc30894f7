"""The `plinth` command line: composition only, it calls each layer's services."""
