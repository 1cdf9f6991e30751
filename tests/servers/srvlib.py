"""Small helpers shared by the test servers and the sandbox driver
(m365emu.py, mailsim.py, dns-harness, sandbox.py).  Standard library only."""

import os


def pid_alive(pid):
    """True while PID runs; a zombie counts as gone (nobody may reap it).
    0 or less (an unknown pid) is never alive: os.kill would address a
    whole process group."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
    except (OSError, IndexError):
        pass
    return True


def write_atomic(path, data, mode=0o644):
    """Writes text or bytes so that a reader sees the old file or the new."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data if isinstance(data, bytes) else data.encode())
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_env(path):
    """The KEY=VALUE lines of a shell-sourceable file ({} when missing)."""
    values = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    values[key.replace("export ", "").strip()] = value.strip().strip("'\"")
    except OSError:
        pass
    return values
