"""MariaDB/MySQL as a source: its client programs, binlog and xbstream formats, and the
throwaway server a restore replays into. Nothing here touches the repository."""
