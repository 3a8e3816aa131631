"""Small measurements shared by the benchmark scripts."""


def rss_mb(pid):
    """A process's private resident memory (RssAnon) in MB, shared buffers excluded; None if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
