"""`medark agent`: enrolment with the management server, and the agent that runs the
host's own schedule (the daemon, in process) while it heartbeats, takes jobs and reports
results over connections it opens itself (docs/server.md, "Agents")."""
