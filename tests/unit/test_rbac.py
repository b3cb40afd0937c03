"""The permissions an --installed run asks the API server for (multirev/rbac.py) and the Role that states them
(manifests/rbac/certify-installed.yaml)."""

from __future__ import annotations

from multirev.rbac import CERTIFY_INSTALLED, Permission, judge, roles


def test_the_required_role_grants_no_secret_and_the_optional_one_is_for_analyze_alone() -> None:
    found = {role.name: role for role in roles()}
    required = found["multirev-certify-installed"]
    assert required.only_for_feature is None
    assert not [p for p in required.permissions if p.resource in ("secrets", "*") and p.group in ("", "*")]
    analyze = found["multirev-certify-installed-analyze"]
    assert analyze.only_for_feature == "analyze"
    assert {str(p) for p in analyze.permissions} == {"list secrets", "watch secrets"}


def test_an_account_with_every_permission_is_neither_refused_nor_withheld_anything() -> None:
    verdict = judge(lambda _: True, roles())
    assert verdict.refusal("ci") is None and verdict.withheld == {}


def test_a_missing_permission_of_the_required_role_refuses_in_one_line_naming_it() -> None:
    lacking = {Permission("create", "", "pods/exec"), Permission("patch", "apps", "deployments")}
    verdict = judge(lambda p: p not in lacking, roles())
    refusal = verdict.refusal("system:serviceaccount:ci:conformance")
    assert refusal is not None and "\n" not in refusal
    assert refusal.startswith("--installed: system:serviceaccount:ci:conformance may not do what the run needs "
                              "(multirev-certify-installed: ")
    assert "patch deployments (apps)" in refusal and "create pods/exec" in refusal
    assert "manifests/rbac/certify-installed.yaml" in refusal and verdict.withheld == {}


def test_a_missing_optional_role_withholds_only_its_feature_with_the_reason() -> None:
    verdict = judge(lambda p: p.resource != "secrets", roles())
    assert verdict.refusal("ci") is None
    assert list(verdict.withheld) == ["analyze"]
    assert "lacks ClusterRole multirev-certify-installed-analyze (list secrets, watch secrets)" in \
        verdict.withheld["analyze"]


def test_a_subresource_is_asked_for_as_resource_and_subresource() -> None:
    assert Permission("create", "", "pods/exec").review() == {
        "resourceAttributes": {"verb": "create", "group": "", "resource": "pods", "subresource": "exec"}}
    assert CERTIFY_INSTALLED.exists()
