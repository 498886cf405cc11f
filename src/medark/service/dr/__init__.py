"""Application-level disaster recovery: the state of each warm standby (`status`), the
application's health checks (`health`), and the actions that move a system between its
sites (switch-over, failover, failback, drill), each recorded in the catalog."""
