import pytest

from coding import services
from tests.coding.api.conftest import code
from tests.conftest import SAMPLE_TEXT


@pytest.fixture
def trail(project, policy, node, admin_user, supervisor, coder_a, coder_b):
    """A small study's history for the history page and the events endpoint: two policies,
    coding in both, a reference moved to another node, one deleted, a done mark."""
    second = services.create_policy(actor=admin_user, project=project, title="第二个政策", text=SAMPLE_TEXT)
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=node)
    moved = code(policy, node, coder_a, 1)
    services.update_reference(actor=coder_a, reference=moved, version=1, node=talent)
    gone = code(policy, node, coder_b, 2)
    services.delete_reference(actor=coder_b, reference=gone)
    code(second, talent, coder_b, 1)
    services.mark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    return {"first": policy, "second": second, "talent": talent}
