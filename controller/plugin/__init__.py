"""`kubectl video`: a kubectl plugin to look at Projects and Scenes and to act on them.

`report` turns API objects into what a person reads (pure); `client` talks to the API
server with the current kubeconfig context; `cli` is the command line.
"""
