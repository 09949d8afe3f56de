"""PgbackrestUpgrade on the provisioned lab. Debian 12 has one pgbackrest version (2.45),
so this runs the upgrade to the version every host has: the gate and the closing
`pgbackrest check` run for real, nothing is installed and the repository's TLS server is
not restarted (its pid is the same). A version the sources lack is refused before
anything changes, with the versions they offer."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from pgha.operations import PGBACKREST_UPGRADE
from pgha.rolling_models import PgbackrestUpgradeInput, PgbackrestUpgradeReport
from pgha.workflows.pgbackrest_upgrade import pgbackrest_hosts
from tests.lab.backup_helpers import Lab, sh

pytestmark = pytest.mark.lab


async def installed(host: str) -> str:
    return await sh(host, "dpkg-query -W -f '${Version}' pgbackrest")


async def test_upgrade_to_the_installed_version_checks_archiving_and_changes_nothing(
    lab_cluster: Lab,
) -> None:
    spec = lab_cluster.spec
    hosts = pgbackrest_hosts(spec)
    versions = {h: await installed(h) for h in hosts}
    server = await sh(lab_cluster.repo, "systemctl show -p MainPID --value pgbackrest")
    inp = PgbackrestUpgradeInput(spec=spec, version="2.45")
    report = PgbackrestUpgradeReport.model_validate(await lab_cluster.run(PGBACKREST_UPGRADE, inp))
    assert report.installed_on == [] and not report.server_restarted
    assert report.versions_after == versions and report.version in versions.values()
    assert report.check_s is None  # nothing changed, so no second check was needed
    assert await sh(lab_cluster.repo, "systemctl show -p MainPID --value pgbackrest") == server


async def test_a_version_the_sources_lack_is_refused_naming_what_they_offer(
    lab_cluster: Lab,
) -> None:
    spec = lab_cluster.spec
    versions = {h: await installed(h) for h in pgbackrest_hosts(spec)}
    with pytest.raises(WorkflowFailureError) as err:
        await lab_cluster.run(PGBACKREST_UPGRADE,
                              PgbackrestUpgradeInput(spec=spec, version="2.99"))  # fmt: skip
    message = str(err.value.cause)
    assert "refused, nothing was changed" in message and "2.45" in message, message
    assert {h: await installed(h) for h in versions} == versions
