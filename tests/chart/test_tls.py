"""mTLS material in the three TLS modes, and how the services are told to use it."""

import helm_python
import pytest

from chart_helpers import render, unb64

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402

SECRETS = ["hello-ca", "hello-service1-tls", "hello-service2-tls"]
HEADLESS = "hello-service1-grpc"
SERVICE2_SPIFFE = "spiffe://cluster.local/ns/demo/sa/hello-service2"


def cert(data: str):
    return x509.load_pem_x509_certificate(unb64(data))


def dns_sans(certificate) -> list[str]:
    ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return ext.value.get_values_for_type(x509.DNSName)


def eku(certificate) -> set:
    return set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def mounted_secret(rendered, component) -> str:
    volumes = rendered.deployment(component)["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    return tls["secret"]["secretName"]


def allowed_clients(rendered) -> list[str]:
    return rendered.config("service1")["TLS_ALLOWED_CLIENTS"].split(",")


def existing(rendered, names=SECRETS) -> dict:
    """What `lookup` would find after installing `rendered`."""
    return {"tls": {"testExistingSecrets": {n: rendered.secret_data(n) for n in names}}}


# --- generate -------------------------------------------------------------


def test_generate_makes_a_ca_and_a_certificate_per_service_in_secrets(default):
    assert sorted(s["metadata"]["name"] for s in default.all("Secret")) == SECRETS
    ca = cert(default.secret_data("hello-ca")["tls.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for component in ("service1", "service2"):
        name = f"hello-{component}-tls"
        data = default.secret_data(name)
        assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
        assert data["ca.crt"] == default.secret_data("hello-ca")["tls.crt"]
        leaf = cert(data["tls.crt"])
        leaf.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(unb64(data["tls.key"]), password=None)
        assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
        assert mounted_secret(default, component) == name


def test_generated_service1_certificate_carries_the_name_service2_checks(default):
    leaf = cert(default.secret_data("hello-service1-tls")["tls.crt"])
    sans = dns_sans(leaf)
    server_name = default.config("service2")["TLS_SERVER_NAME"]
    assert server_name == HEADLESS
    assert server_name in sans
    # service1 checks its own certificate for the same name.
    assert default.config("service1")["TLS_SERVER_NAME"] == server_name
    for name in (HEADLESS, "hello-service1"):
        for suffix in ("", ".demo", ".demo.svc", ".demo.svc.cluster.local"):
            assert name + suffix in sans
    assert "service1" in sans
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku(leaf)


def test_generated_service2_certificate_is_an_identity_service1_allows(default):
    leaf = cert(default.secret_data("hello-service2-tls")["tls.crt"])
    assert dns_sans(leaf) == ["service2"]
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku(leaf)
    assert set(dns_sans(leaf)) & set(allowed_clients(default))


def test_upgrade_keeps_the_existing_ca_and_certificates_verbatim(default):
    upgraded = render(existing(default), is_upgrade=True)
    for name in SECRETS:
        assert upgraded.secret_data(name) == default.secret_data(name)


def test_a_fresh_install_gets_a_new_ca(default):
    assert render().secret_data("hello-ca") != default.secret_data("hello-ca")


def test_a_deleted_service_certificate_is_resigned_by_the_kept_ca(default):
    kept = existing(default, ["hello-ca", "hello-service2-tls"])
    upgraded = render(kept, is_upgrade=True)
    assert upgraded.secret_data("hello-ca") == default.secret_data("hello-ca")
    assert upgraded.secret_data("hello-service2-tls") == default.secret_data("hello-service2-tls")
    new = upgraded.secret_data("hello-service1-tls")
    assert new["tls.crt"] != default.secret_data("hello-service1-tls")["tls.crt"]
    assert new["ca.crt"] == default.secret_data("hello-ca")["tls.crt"]
    cert(new["tls.crt"]).verify_directly_issued_by(cert(default.secret_data("hello-ca")["tls.crt"]))


def test_certificates_whose_ca_is_gone_are_not_kept(default):
    kept = existing(default, ["hello-service1-tls", "hello-service2-tls"])
    upgraded = render(kept, is_upgrade=True)
    ca = cert(upgraded.secret_data("hello-ca")["tls.crt"])
    for name in ("hello-service1-tls", "hello-service2-tls"):
        assert upgraded.secret_data(name) != default.secret_data(name)
        cert(upgraded.secret_data(name)["tls.crt"]).verify_directly_issued_by(ca)


def test_new_certificates_do_not_restart_pods(default):
    """Rotation relies on hot reload: pod templates must not change with the certs."""
    other = render()
    assert other.secret_data("hello-service1-tls") != default.secret_data("hello-service1-tls")
    for component in ("service1", "service2"):
        assert other.deployment(component) == default.deployment(component)


def test_changed_settings_roll_only_the_pods_they_concern(default):
    def checksum(rendered, component):
        return rendered.deployment(component)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    changed = render({"service2": {"service1TimeoutSeconds": 3}})
    assert changed.config("service2")["SERVICE1_TIMEOUT"] == "3s"
    assert checksum(changed, "service2") != checksum(default, "service2")
    assert checksum(changed, "service1") == checksum(default, "service1")
    both = render({"logFormat": "text"})
    for component in ("service1", "service2"):
        assert checksum(both, component) != checksum(default, component)


# --- certManager ----------------------------------------------------------


def test_cert_manager_mode_builds_its_own_ca_chain_by_default():
    rendered = render({"tls": {"mode": "certManager"}})
    assert rendered.all("Secret") == []
    selfsigned = rendered.get("Issuer", "hello-selfsigned")
    assert selfsigned["spec"] == {"selfSigned": {}}
    ca = rendered.get("Certificate", "hello-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"]["name"] == "hello-selfsigned"
    # Renewing the CA must not change its key, or certificates it already
    # signed would stop verifying against the renewed ca.crt.
    assert ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    ca_issuer = rendered.get("Issuer", "hello-ca")
    assert ca_issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    for component in ("service1", "service2"):
        certificate = rendered.get("Certificate", f"hello-{component}")
        assert certificate["spec"]["issuerRef"]["name"] == "hello-ca"
        assert certificate["spec"]["secretName"] == mounted_secret(rendered, component)


def test_cert_manager_certificates_name_both_identities():
    rendered = render({"tls": {"mode": "certManager"}})
    server = rendered.get("Certificate", "hello-service1")["spec"]
    assert "server auth" in server["usages"]
    assert rendered.config("service2")["TLS_SERVER_NAME"] in server["dnsNames"]
    assert f"{HEADLESS}.demo.svc.cluster.local" in server["dnsNames"]
    client = rendered.get("Certificate", "hello-service2")["spec"]
    assert "client auth" in client["usages"]
    assert client["dnsNames"] == ["service2"]
    assert client["uris"] == [SERVICE2_SPIFFE]
    # The URI names the ServiceAccount service2 actually runs as.
    sa = rendered.deployment("service2")["spec"]["template"]["spec"]["serviceAccountName"]
    assert client["uris"][0].endswith(f"/ns/demo/sa/{sa}")
    assert SERVICE2_SPIFFE in allowed_clients(rendered)


def test_cert_manager_uses_the_given_issuer_and_makes_none():
    ref = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    rendered = render({"tls": {"mode": "certManager", "certManager": {"issuerRef": ref}}})
    assert rendered.all("Issuer") == []
    certificates = rendered.all("Certificate")
    assert sorted(c["metadata"]["name"] for c in certificates) == ["hello-service1", "hello-service2"]
    for certificate in certificates:
        assert certificate["spec"]["issuerRef"] == ref


# --- existingSecret -------------------------------------------------------


def test_existing_secret_mode_mounts_the_named_secrets_and_makes_none():
    rendered = render({"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1", "service2": "s2"}}})
    assert rendered.all("Secret") == [] and rendered.all("Certificate") == []
    assert mounted_secret(rendered, "service1") == "s1"
    assert mounted_secret(rendered, "service2") == "s2"


def test_existing_secret_mode_requires_both_names():
    with pytest.raises(helm_python.HelmRenderError, match=r"tls\.existingSecret\.service2 is required"):
        render({"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1"}}})


# --- every mode -----------------------------------------------------------

MODES = [
    {},
    {"tls": {"mode": "certManager"}},
    {"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1", "service2": "s2"}}},
]


@pytest.mark.parametrize("values", MODES, ids=["generate", "certManager", "existingSecret"])
def test_every_mode_runs_mtls_from_the_mounted_secret(values):
    rendered = render(values)
    for component in ("service1", "service2"):
        env = rendered.config(component)
        assert env["TLS_MODE"] == "mtls"
        assert (env["TLS_CERT"], env["TLS_KEY"], env["TLS_CA"]) == (
            "/etc/tls/tls.crt", "/etc/tls/tls.key", "/etc/tls/ca.crt")
        assert env["TLS_RELOAD_INTERVAL"] == "5s"
        container = rendered.container(component)
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
        assert mount == {"name": "tls", "mountPath": "/etc/tls", "readOnly": True}  # no subPath
        volumes = rendered.deployment(component)["spec"]["template"]["spec"]["volumes"]
        (volume,) = [v for v in volumes if v["name"] == "tls"]
        assert "items" not in volume["secret"]
        assert volume["secret"]["defaultMode"] in (0o440, 0o400)
    assert "service2" in allowed_clients(rendered)
    assert SERVICE2_SPIFFE in allowed_clients(rendered)


def test_extra_allowed_clients_are_added_not_substituted():
    rendered = render({"service1": {"extraAllowedClients": ["spiffe://cluster.local/ns/ops/sa/debug"]}})
    assert allowed_clients(rendered) == ["service2", SERVICE2_SPIFFE, "spiffe://cluster.local/ns/ops/sa/debug"]



# --- GitOps ---------------------------------------------------------------


def test_cert_manager_can_take_the_ca_from_a_secret_and_issue_only_the_leaves():
    rendered = render({"tls": {"mode": "certManager", "certManager": {"caSecretName": "corp-ca-keypair"}}})
    (issuer,) = rendered.all("Issuer")
    assert issuer["metadata"]["name"] == "hello-ca"
    assert issuer["spec"] == {"ca": {"secretName": "corp-ca-keypair"}}
    # No self-signed chain, no CA Certificate, no Secret made by Helm.
    assert sorted(c["metadata"]["name"] for c in rendered.all("Certificate")) == ["hello-service1", "hello-service2"]
    assert rendered.all("Secret") == []
    for component in ("service1", "service2"):
        certificate = rendered.get("Certificate", f"hello-{component}")
        assert certificate["spec"]["issuerRef"] == {"name": "hello-ca", "kind": "Issuer", "group": "cert-manager.io"}


@pytest.mark.parametrize("values", [
    {"tls": {"mode": "certManager"}},
    {"tls": {"mode": "certManager", "certManager": {"caSecretName": "corp-ca-keypair"}}},
    {"tls": {"mode": "certManager", "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}},
    {"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1", "service2": "s2"}}},
], ids=["certManager", "certManager with a CA Secret", "certManager with an issuer", "existingSecret"])
def test_gitops_safe_modes_render_the_same_objects_every_time(values):
    """What `helm template` (Argo CD) renders must not change from one sync to the next."""
    assert render(values).objects == render(values).objects


def test_generate_renders_new_certificates_without_lookup_which_is_why_notes_warn(default):
    assert render().secret_data("hello-ca") != default.secret_data("hello-ca")
    assert "WARNING for GitOps" in default.notes
    assert "certManager" in default.notes and "existingSecret" in default.notes
    for values in ({"tls": {"mode": "certManager"}},
                   {"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1", "service2": "s2"}}}):
        assert "GitOps" not in render(values).notes


def test_notes_say_generated_certificates_expire_and_are_not_renewed():
    notes = render({"tls": {"generate": {"certValidityDays": 365}}}).notes
    assert "never renewed" in notes
    assert "last 365 days" in notes
    assert "tls_certificate_not_after_seconds" in notes


def test_a_ca_secret_and_an_issuer_of_your_own_are_not_both_accepted():
    with pytest.raises(helm_python.HelmValuesError, match="issuerRef"):
        render({"tls": {"mode": "certManager", "certManager": {
            "caSecretName": "corp-ca-keypair", "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}})


# --- identity under a shared issuer ---------------------------------------

SPIFFE_ONLY = [
    {"tls": {"mode": "certManager", "spiffeOnly": True}},
    {"tls": {"mode": "existingSecret", "spiffeOnly": True, "existingSecret": {"service1": "s1", "service2": "s2"}}},
]


@pytest.mark.parametrize("values", SPIFFE_ONLY, ids=["certManager", "existingSecret"])
def test_spiffe_only_accepts_service2_by_its_spiffe_id_alone(values):
    rendered = render(values)
    assert allowed_clients(rendered) == [SERVICE2_SPIFFE]
    assert "service2" not in allowed_clients(rendered)


@pytest.mark.parametrize("values", SPIFFE_ONLY, ids=["certManager", "existingSecret"])
def test_spiffe_only_has_service2_require_service1s_spiffe_id(values):
    rendered = render(values)
    assert rendered.config("service2")["TLS_SERVER_IDENTITY"] == "spiffe://cluster.local/ns/demo/sa/hello-service1"
    assert "TLS_SERVER_IDENTITY" not in render({"tls": {"mode": "certManager"}}).config("service2")


def test_spiffe_only_keeps_extra_spiffe_clients():
    debug = "spiffe://cluster.local/ns/ops/sa/debug"
    rendered = render({"tls": {"mode": "certManager", "spiffeOnly": True},
                       "service1": {"extraAllowedClients": [debug]}})
    assert allowed_clients(rendered) == [SERVICE2_SPIFFE, debug]


def test_spiffe_only_certificates_carry_the_uri_service1_requires():
    rendered = render(SPIFFE_ONLY[0])
    client = rendered.get("Certificate", "hello-service2")["spec"]
    assert set(client["uris"]) == set(allowed_clients(rendered))


@pytest.mark.parametrize("values, where", [
    ({"tls": {"spiffeOnly": True}}, "/tls/mode"),
    ({"tls": {"mode": "certManager", "spiffeOnly": True}, "service1": {"extraAllowedClients": ["debug-client"]}},
     "/service1/extraAllowedClients/0"),
], ids=["generate cannot write URI SANs", "a DNS name among the extra clients"])
def test_spiffe_only_refuses_what_would_let_a_dns_name_back_in(values, where):
    with pytest.raises(helm_python.HelmValuesError) as info:
        render(values)
    assert where in str(info.value)


def test_cert_manager_gives_service1_its_own_spiffe_id():
    rendered = render({"tls": {"mode": "certManager"}})
    server = rendered.get("Certificate", "hello-service1")["spec"]
    sa = rendered.deployment("service1")["spec"]["template"]["spec"]["serviceAccountName"]
    assert server["uris"] == [f"spiffe://cluster.local/ns/demo/sa/{sa}"]
