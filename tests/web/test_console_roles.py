"""Each role signs in through the console's login page (an administrator's TOTP step
too) and sees only its own pages in the menu; a page outside its role opens the
not-found page; a viewer never reaches the audit page, which the server refuses it
anyway; the language switch changes the console to English and back, kept across a
reload; in the users page's roles dialog the separation-of-duties error and the
four-eyes notice stack, never overlap, in either language (photographed). A real
`medark server` and Debian's chromium (console_site.py)."""

from __future__ import annotations

from typing import Any

from console_site import (
    HOSPITAL_USERS,
    INSTITUTION,
    LOCALE_KEY,
    ROLES,
    Console,
    Problems,
    artefacts,
    browser_fixture,
    console_fixture,
    menu_entries,
    menu_links,
    menu_of,
    settle,
    shows_not_found,
    sign_in_through_the_page,
)

console = console_fixture()
browser = browser_fixture()


def test_each_role_sees_only_its_pages(console: Console, browser: Any) -> None:
    every = {entry.path for entry in menu_entries()}
    assert every, "the console's menu has no page"
    for role in ROLES:
        context = console.context(browser, None)
        try:
            page = context.new_page()
            problems = Problems(page)
            sign_in_through_the_page(page, console, role)
            expected = menu_of(role)
            assert menu_links(page) == expected, role
            # signed in, the home page is the first of its menu
            page.wait_for_url(f"**{expected[0]}")
            outside = sorted(every - set(expected))
            if outside:
                page.goto(outside[0])
                assert shows_not_found(page), (role, outside[0])
            page.goto("/no-such-page")
            assert shows_not_found(page), role
            assert not problems.found, (role, problems.found)
            console.states[role] = context.storage_state()
        finally:
            context.close()


def test_a_wrong_password_stays_on_the_login_page(console: Console, browser: Any) -> None:
    context = console.context(browser, None)
    try:
        page = context.new_page()
        page.goto("/jobs")
        page.wait_for_url("**/login?redirect=/jobs")
        page.locator("input[name=username]").fill(console.users["viewer"].name)
        page.locator("input[name=password]").fill("not the password")
        page.locator("button[type=submit]").click()
        page.locator("[role=alert]").first.wait_for()
        assert "/login" in page.url and not page.locator("nav .menu-link").count()
    finally:
        context.close()


def test_a_viewer_cannot_open_the_audit_page(console: Console, browser: Any) -> None:
    assert "/audit" not in menu_of("viewer")
    context = console.context(browser, "viewer")
    try:
        page = context.new_page()
        page.goto("/")
        assert "/audit" not in menu_links(page)
        page.goto("/audit")
        assert shows_not_found(page)
        # the server refuses it too, to the viewer's own session in the browser
        refused = context.request.get("/api/audit")
        assert refused.status == 403, refused.text()
        assert refused.json()["error"]["code"] == "forbidden"
    finally:
        context.close()
    # while the audit administrator reads it, and sees the page once it exists
    assert console.users["auditadmin"].call("GET", "/api/audit").status_code == 200
    if any(entry.path == "/audit" for entry in menu_entries()):
        assert "/audit" in menu_of("auditadmin")


def _language(page: Any) -> str:
    return str(page.evaluate("document.documentElement.lang"))


def _choose(page: Any, name: str) -> None:
    """Pick a language in the header's switch (an Element Plus select)."""
    page.locator(".language-switch").first.click()
    page.get_by_role("option", name=name, exact=True).click()


def test_switch_the_language_and_keep_it(console: Console, browser: Any) -> None:
    context = console.context(browser, None, locale=None)
    try:
        page = context.new_page()
        sign_in_through_the_page(page, console, "operator")
        assert page.evaluate(f"localStorage.getItem('{LOCALE_KEY}')") is None
        assert _language(page) == "zh-CN"  # Chinese by default
        chinese = page.locator("nav").inner_text()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese), chinese

        _choose(page, "English")
        page.wait_for_function("() => document.documentElement.lang === 'en'")
        english = page.locator("nav").inner_text()
        assert english != chinese and not any("\u4e00" <= ch <= "\u9fff" for ch in english)
        page.reload()
        page.locator("nav .menu-link").first.wait_for()
        assert _language(page) == "en"
        assert page.locator("nav").inner_text() == english
        assert page.evaluate(f"localStorage.getItem('{LOCALE_KEY}')") == "en"

        _choose(page, "中文")
        page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
        page.reload()
        page.locator("nav .menu-link").first.wait_for()
        assert _language(page) == "zh-CN"
        assert page.locator("nav").inner_text() == chinese
    finally:
        context.close()
    assert console.users["operator"].call("GET", "/api/me").json()["user"][
        "institution"] == INSTITUTION


ROLES_DIALOG = {"zh-CN": ("操作", "修改角色", ("系统管理员", "安全管理员")),
                "en": ("Actions", "Change roles",
                       ("System administrator", "Security administrator"))}


def test_the_roles_dialog_stacks_its_messages(console: Console, browser: Any) -> None:
    operator = HOSPITAL_USERS["operator"]
    for locale, (actions, change, admins) in ROLES_DIALOG.items():
        context = console.context(browser, "secadmin", locale=locale)
        try:
            page = context.new_page()
            problems = Problems(page)
            page.goto("/users")
            settle(page)
            row = page.locator(".el-table__row", has_text=operator).first
            row.get_by_role("button", name=actions).click()
            page.get_by_role("menuitem", name=change).click()
            dialog = page.locator(".el-dialog").filter(has=page.locator(".el-checkbox"))
            for name in admins:  # two administrator roles: both messages show
                dialog.locator(".el-checkbox", has_text=name).click()
            error = dialog.locator(".el-form-item__error")
            notice = dialog.locator(".el-alert")
            error.wait_for()
            notice.wait_for()
            page.wait_for_timeout(400)  # the dialog's opening transition
            page.screenshot(path=str(artefacts() / f"users-roles-dialog-{locale}-1366x768.png"))
            said, told = error.bounding_box(), notice.bounding_box()
            assert said and told
            assert said["y"] + said["height"] <= told["y"], (locale, said, told)
            assert not problems.found, problems.found
        finally:
            context.close()
