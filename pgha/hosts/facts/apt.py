"""Facts about apt: the configured sources, and whether apt itself can reach a URL. Read-only.

Changes nothing on the host but a temporary download it removes again.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from pgha.hosts.host import Host

#: Lists every sources file apt reads (its own Dir::Etc settings, Debian's defaults if
#: apt-config is missing), each after a marker line the parser splits on.
APT_SOURCES_SCRIPT = r"""L=/etc/apt/sources.list P=/etc/apt/sources.list.d/
eval "$(apt-config shell L Dir::Etc::sourcelist/f P Dir::Etc::sourceparts/d 2>/dev/null)"
for f in "$L" "${P%/}"/*.list "${P%/}"/*.sources; do
  [ -f "$f" ] || continue
  printf '\036file %s\n' "$f"; cat -- "$f"; echo
done
"""

_MARKER = "\x1efile "


class AptSource(BaseModel):
    """One (type, URI, suite) that apt fetches. A deb822 stanza with several URIs or suites
    gives one entry per pair."""

    model_config = ConfigDict(frozen=True)

    file: str
    type: str
    uri: str
    suite: str
    components: list[str]


def _one_line(path: str, text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        kind, _, rest = line.partition(" ")
        if kind not in ("deb", "deb-src"):
            continue
        rest = rest.strip()
        if rest.startswith("["):  # options: [arch=amd64 signed-by=/usr/share/keyrings/x.gpg]
            rest = rest[rest.find("]") + 1 :].strip()
        words = rest.split()
        if len(words) >= 2:
            out.append(
                AptSource(file=path, type=kind, uri=words[0], suite=words[1], components=words[2:])
            )
    return out


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key: str | None = None
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
        elif line[0] in " \t" and key is not None:
            fields[key] += " " + line.strip()
        else:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()
    return stanzas


def _deb822(path: str, text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for st in _stanzas(text):
        if st.get("enabled", "yes").lower() == "no":
            continue
        components = st.get("components", "").split()
        for kind in st.get("types", "").split():
            for uri in st.get("uris", "").split():
                for suite in st.get("suites", "").split():
                    out.append(
                        AptSource(file=path, type=kind, uri=uri, suite=suite, components=components)
                    )
    return out


def parse_apt_sources(stdout: str) -> list[AptSource]:
    """Parse :data:`APT_SOURCES_SCRIPT` output. Pure.

    ``*.sources`` files are deb822 stanzas (``Types:``, ``URIs:``, ``Suites:``...;
    ``Enabled: no`` ones are left out); others are one-line ``deb [opts] uri suite comp...``
    entries. Comments are ignored in both.
    """
    out: list[AptSource] = []
    for chunk in stdout.split(_MARKER)[1:]:
        path, _, text = chunk.partition("\n")
        out.extend(_deb822(path, text) if path.endswith(".sources") else _one_line(path, text))
    return out


async def apt_sources(host: Host) -> list[AptSource]:
    """The enabled apt sources of the host, in the order apt reads them. Read-only."""
    out = await host.run(["sh", "-c", APT_SOURCES_SCRIPT], label="apt-sources")
    return parse_apt_sources(out.stdout)


# --- reachability through apt ---------------------------------------------------------------


class UrlCheck(BaseModel):
    """Whether apt could download ``url``; ``detail`` is apt's error line, or what it fetched."""

    model_config = ConfigDict(frozen=True)

    url: str
    reachable: bool
    detail: str


#: apt-helper uses apt's own transports, proxy and TLS settings, so success proves apt can
#: fetch from there. It downloads as the sandbox user _apt, which must own the directory.
#: `timeout` bounds the whole download, apt's own timeouts only each connect and read.
URL_REACHABLE_SCRIPT = r"""d=$(mktemp -d /tmp/pgha-apt-probe.XXXXXX) || exit
chown _apt "$d" 2>/dev/null
if [ -n "$3" ]; then export http_proxy="$3" https_proxy="$3"; fi
timeout --kill-after=5 "$2" /usr/lib/apt/apt-helper -o Acquire::Retries=0 \
  -o Acquire::http::Timeout="$2" -o Acquire::https::Timeout="$2" \
  download-file "$1" "$d/probe" 2>&1
rc=$?
rm -rf -- "$d"
exit $rc
"""


def parse_url_check(url: str, exit_code: int, output: str, timeout: int) -> UrlCheck:
    """Turn apt-helper's exit code and merged output into an answer. Pure."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if exit_code == 0:
        fetched = next((ln for ln in lines if ln.startswith("Fetched ")), "downloaded")
        return UrlCheck(url=url, reachable=True, detail=fetched)
    if exit_code in (124, 137):
        return UrlCheck(url=url, reachable=False, detail=f"no complete answer within {timeout} s")
    errors = [ln.removeprefix("E: ") for ln in lines if ln.startswith("E: ")]
    errors = [e for e in errors if e != "Download Failed"]
    if errors:
        # "Failed to fetch URL  reason": the caller already knows the URL.
        detail = errors[0].removeprefix("Failed to fetch").strip()
        detail = detail.removeprefix(url).strip() or errors[0]
    else:
        detail = lines[-1] if lines else f"apt-helper exited {exit_code}"
    return UrlCheck(url=url, reachable=False, detail=detail)


async def url_reachable(
    host: Host, url: str, timeout: int = 10, *, env_proxy: str | None = None
) -> UrlCheck:
    """Download ``url`` with apt's own transport and settings, then remove the file.

    Read-only apart from the temporary file. Use a small file (a Release or InRelease).

    :param timeout: seconds for the whole download.
    :param env_proxy: a proxy URL to use as ``http_proxy``/``https_proxy``, as
        :func:`pgha.hosts.ops.packages.ensure_packages` does; apt.conf proxies still win.
    """
    password = urlsplit(env_proxy).password if env_proxy else None
    out = await host.run(
        [
            "sh",
            "-c",
            URL_REACHABLE_SCRIPT,
            "pgha-url-check",
            url,
            str(int(timeout)),
            env_proxy or "",
        ],
        check=False,
        timeout=timeout + 30,
        label="apt-helper",
        secrets=[SecretStr(password)] if password else (),
    )
    return parse_url_check(url, out.exit_code, out.stdout + out.stderr, timeout)
