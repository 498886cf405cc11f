"""Normalisation of real-looking device outputs: volatile lines never count as a change,
anything else does, and the stored text keeps every configuration line."""

from __future__ import annotations

import pytest

from medark.sources.netconfig.profiles import (
    CISCO_IOS,
    COMMAND,
    H3C,
    HUAWEI,
    RUIJIE,
    clean,
    fingerprint,
    normalise,
    profile,
)

IOS = """show running-config\r
Building configuration...\r
\r
Current configuration : 4211 bytes\r
!\r
! Last configuration change at 10:32:11 UTC Mon Mar 4 2024 by admin\r
! NVRAM config last updated at 10:32:15 UTC Mon Mar 4 2024 by admin\r
!\r
version 15.2\r
service timestamps debug datetime msec\r
hostname CORE-SW1\r
!\r
interface GigabitEthernet0/1\r
 description HIS-DB uplink\r
 switchport access vlan 20\r
!\r
ntp clock-period 17179869\r
ntp server 10.0.0.1\r
end\r
\r
CORE-SW1#"""

VRP = """<HIS-CORE>display current-configuration
!Software Version V200R011C10SPC500
!Last configuration was updated at 2024-03-04 10:32:11+08:00 by admin
!Last configuration was saved at 2024-03-01 09:00:00+08:00 by admin
#
sysname HIS-CORE
#
vlan batch 10 20 30
#
interface GigabitEthernet0/0/1
 description PACS storage
  ---- More ----\x1b[42D                                          \x1b[42D port link-type access
 port default vlan 20
#
return
<HIS-CORE>"""


def test_ios_volatile_lines_do_not_count() -> None:
    later = (IOS.replace("10:32:11 UTC Mon Mar 4", "03:00:02 UTC Tue Mar 5")
             .replace("4211 bytes", "4215 bytes").replace("17179869", "17179870"))
    assert later != IOS
    assert fingerprint(later, CISCO_IOS) == fingerprint(IOS, CISCO_IOS)
    changed = IOS.replace("vlan 20", "vlan 30")
    assert fingerprint(changed, CISCO_IOS) != fingerprint(IOS, CISCO_IOS)


def test_ios_clean_keeps_the_configuration_and_drops_echo_and_prompt() -> None:
    text = clean(IOS, CISCO_IOS)
    assert text.startswith("Building configuration...\n")
    assert text.endswith("end\n")
    assert "\r" not in text and "CORE-SW1#" not in text
    assert "! Last configuration change at 10:32:11" in text  # stored as printed
    norm = normalise(IOS, CISCO_IOS)
    assert "Last configuration change" not in norm and "Current configuration" not in norm
    assert "ntp clock-period" not in norm and "ntp server 10.0.0.1" in norm


def test_vrp_paging_leftovers_and_timestamps() -> None:
    text = clean(VRP, HUAWEI)
    assert "More" not in text and "\x1b" not in text
    assert " port link-type access" in text.split("\n")
    assert text.startswith("!Software Version") and text.endswith("return\n")
    later = VRP.replace("2024-03-04 10:32:11", "2024-03-05 11:00:00")
    assert fingerprint(later, HUAWEI) == fingerprint(VRP, HUAWEI)
    upgraded = VRP.replace("V200R011C10SPC500", "V200R019C10SPC800")
    assert fingerprint(upgraded, HUAWEI) != fingerprint(VRP, HUAWEI)


def test_comware_and_ruijie() -> None:
    comware = "#\n version 7.1.064, Release 0821P11\n#\n sysname H3C-1\n#\n" \
              " ntp-service unicast-server 10.0.0.1\n#\nreturn\n[H3C-1]"
    assert clean(comware, H3C).endswith("return\n")
    saved = comware.replace("#\n version", "#\n#  Last configuration was saved at "
                            "19:40:01.123456 UTC Sun Dec 06 2026\n version", 1)
    assert fingerprint(saved, H3C) == fingerprint(comware, H3C)  # the save time: volatile
    assert "Last configuration was saved" in clean(saved, H3C)  # but stored
    rgos = "Building configuration...\nCurrent configuration : 1024 bytes\n\n" \
           "hostname RG-1\n!\nend\nRG-1#"
    later = rgos.replace("1024", "1030")
    assert fingerprint(later, RUIJIE) == fingerprint(rgos, RUIJIE)
    assert normalise(rgos, RUIJIE) == "hostname RG-1\n!\nend\n"


def test_command_profile_and_uptime() -> None:
    out = "set system host-name fw1\n# fw1 uptime is 3 days, 2 hours\nset vlan 10\n"
    later = out.replace("3 days", "4 days")
    assert fingerprint(later, COMMAND) == fingerprint(out, COMMAND)
    assert clean(out, COMMAND) == out


def test_unknown_profile() -> None:
    with pytest.raises(ValueError, match="unknown profile 'juniper'"):
        profile("juniper")
