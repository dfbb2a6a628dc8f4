"""Factories kept surprise-free: they build exactly what their fields say, and write no
audit events (tests of services call the services)."""

import factory
from django.contrib.auth import get_user_model

from coding.models import Clause, Membership, Node, Policy, Project, Reference, Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.Sequence(lambda n: f"Project {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.CODER


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Policy

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Policy {n}")
    text = "第一条　为了促进智慧城市建设，制定本条例。\n第二条　本条例适用于本市行政区域。\n"


class ClauseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clause

    policy = factory.SubFactory(PolicyFactory)
    number = 1
    start = 0
    end = 5


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Node {n}")


class ReferenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reference

    clause = factory.SubFactory(ClauseFactory)
    policy = factory.LazyAttribute(lambda o: o.clause.policy)
    node = factory.SubFactory(NodeFactory, project=factory.SelfAttribute("..policy.project"))
    coder = factory.SubFactory(UserFactory)
    created_by = factory.LazyAttribute(lambda o: o.coder)
    start = factory.LazyAttribute(lambda o: o.clause.start)
    end = factory.LazyAttribute(lambda o: o.clause.end)
    text = factory.LazyAttribute(lambda o: o.policy.text[o.start : o.end])
