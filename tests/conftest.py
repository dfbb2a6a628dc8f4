from pathlib import Path

import pytest

from coding import services
from coding.models import Role
from tests.factories import ProjectFactory, UserFactory

SHARED = Path(__file__).resolve().parents[2] / "shared"
POLICY_TEXTS = SHARED / "data" / "policies"

SAMPLE_TEXT = (
    "济宁市智慧城市促进条例\n"
    "第一章　总则\n"
    "第一条　为了促进智慧城市建设，制定本条例。\n"
    "第二条　本条例适用于本市行政区域内智慧城市的规划、建设、管理和服务。\n"
    "第三条　市人民政府应当加强人才培养，𠀀支持数据共享。\n"
)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # The manifest storage needs `collectstatic`; tests serve the source files instead.
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }
    # A deliberately slow hash is the point in production and pure cost in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def project(db):
    return ProjectFactory(slug="study", name="Study")


def _member(project, username: str, role: str):
    user = UserFactory(username=username)
    services.set_membership(actor=None, project=project, user=user, role=role)
    return user


@pytest.fixture
def admin_user(project):
    return _member(project, "admin_p", Role.ADMIN)


@pytest.fixture
def supervisor(project):
    return _member(project, "supervisor_p", Role.SUPERVISOR)


@pytest.fixture
def coder_a(project):
    return _member(project, "coder_a", Role.CODER)


@pytest.fixture
def coder_b(project):
    return _member(project, "coder_b", Role.CODER)


@pytest.fixture
def outsider(db):
    """A logged-in user who belongs to another project, not this one."""
    user = UserFactory(username="outsider")
    other = ProjectFactory(slug="elsewhere")
    services.set_membership(actor=None, project=other, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def policy(project, admin_user):
    return services.create_policy(actor=admin_user, project=project, title="济宁市智慧城市促进条例", text=SAMPLE_TEXT)


@pytest.fixture
def node(project, admin_user):
    return services.add_node(actor=admin_user, project=project, name="Supply-based")
