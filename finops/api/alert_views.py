"""Alerts (read), and the rules, silences and channels behind them: admins write all of
them, a team's managers their team's (signed in; API keys read only)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.accounts.models import ApiKey, Membership, Role, Scope, Team
from finops.accounts.selectors import user_is_admin
from finops.alerts.models import (
    RULE_FIELD_BOUNDS,
    Alert,
    AlertRule,
    Channel,
    ChannelKind,
    Notification,
    Silence,
    rule_params_errors,
)
from finops.alerts.notify import DeliveryError, _post, _safe_url
from finops.api.params import ParameterError, ZonedDateTimeField, as_validation_error, query_choice
from finops.api.permissions import request_teams

ANY_READ = (Scope.READ, Scope.BILLING_READ)


def _visible(request: Request, objects: QuerySet[Any]) -> QuerySet[Any]:
    teams, all_teams = request_teams(request)
    visible = Q(team__in=teams)
    if all_teams:
        visible |= Q(team__isnull=True)
    return objects.filter(visible)


def _may_write(request: Request, team: Team | None) -> None:
    user = request.user
    if isinstance(request.auth, ApiKey):
        raise exceptions.PermissionDenied("API keys read alerts; people (signed in) change them.")
    if user_is_admin(user=user):
        return
    if (
        team is not None
        and Membership.objects.filter(user=user, team=team, role=Role.MANAGER).exists()
    ):
        return
    raise exceptions.PermissionDenied(
        "Admins change every rule, silence and channel; a team's managers their team's."
    )


class TeamSlugField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", queryset=Team.objects.all(), allow_null=True,
                         required=False, **kwargs)  # fmt: skip


class NotificationOutputSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.name")

    class Meta:
        model = Notification
        fields = ["channel", "kind", "status", "attempts", "last_error", "created_at", "sent_at"]


class AlertOutputSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")
    notifications = NotificationOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "rule", "dedup_key", "labels", "state", "value", "pending_since",
                  "fired_at", "resolved_at", "last_notified_at", "notifications"]  # fmt: skip


class AlertsResultSerializer(serializers.Serializer):
    results = AlertOutputSerializer(many=True)


class AlertListApi(APIView):
    """``GET /api/v1/alerts?state=pending|firing|resolved``: newest first (at most 500)."""

    required_scopes = ANY_READ

    @extend_schema(operation_id="alerts_list", responses=AlertsResultSerializer)
    def get(self, request: Request) -> Response:
        try:
            state = query_choice(request.query_params, "state", ("pending", "firing", "resolved"))
        except ParameterError as exc:
            raise as_validation_error(exc) from exc
        teams, all_teams = request_teams(request)
        alerts = Alert.objects.select_related("rule").prefetch_related("notifications__channel")
        visible = Q(rule__team__in=teams) | (
            Q(rule__team__isnull=True) if all_teams else Q(pk=None)
        )
        alerts = alerts.filter(visible)
        if state:
            alerts = alerts.filter(state=state)
        return Response({"results": AlertOutputSerializer(alerts[:500], many=True).data})


class RuleSerializer(serializers.ModelSerializer):
    team = TeamSlugField()
    channels = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Channel.objects.all(), required=False
    )

    class Meta:
        model = AlertRule
        fields = ["id", "name", "kind", "params", "threshold", "resolve_threshold", "for_s",
                  "repeat_interval_s", "severity", "team", "channels", "enabled"]  # fmt: skip

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        threshold = data.get("threshold", getattr(self.instance, "threshold", None))
        resolve = data.get("resolve_threshold", getattr(self.instance, "resolve_threshold", None))
        if resolve is not None and threshold is not None and resolve > threshold:
            raise serializers.ValidationError({"resolve_threshold": "must not exceed threshold"})
        errors: dict[str, Any] = {}
        for name, (low, high) in RULE_FIELD_BOUNDS.items():
            if name in data and not low <= data[name] <= high:
                errors[name] = f"must be from {low} to {high} seconds"
        kind = data.get("kind", getattr(self.instance, "kind", ""))
        if "params" in data and (problems := rule_params_errors(kind, data["params"])):
            errors["params"] = problems
        if errors:
            raise serializers.ValidationError(errors)
        return data


class SilenceSerializer(serializers.ModelSerializer):
    starts_at = ZonedDateTimeField(max_future=None)
    ends_at = ZonedDateTimeField(max_future=None)

    class Meta:
        model = Silence
        fields = ["id", "rule", "matchers", "starts_at", "ends_at", "comment"]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["ends_at"] <= data["starts_at"]:
            raise serializers.ValidationError({"ends_at": "must be after starts_at"})
        matchers = data.get("matchers") or {}
        if not isinstance(matchers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in matchers.items()
        ):
            raise serializers.ValidationError({"matchers": "an object of label: value strings"})
        return data


class ChannelSerializer(serializers.ModelSerializer):
    team = TeamSlugField()

    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "target", "team", "enabled"]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        kind = data.get("kind", getattr(self.instance, "kind", None))
        target = data.get("target", getattr(self.instance, "target", ""))
        if kind == ChannelKind.EMAIL:
            addresses = [a.strip() for a in target.split(",") if a.strip()]
            if not addresses or not all("@" in a for a in addresses):
                raise serializers.ValidationError({"target": "comma-separated e-mail addresses"})
        else:
            try:
                _safe_url(target)
            except (DeliveryError, OSError) as exc:
                raise serializers.ValidationError({"target": str(exc)}) from None
        return data


def _collection(
    model: Any, serializer: type[serializers.ModelSerializer], *, team_of: Any
) -> type[APIView]:
    class CollectionApi(APIView):
        required_scopes = ANY_READ

        def get_queryset(self) -> QuerySet[Any]:
            objects = model.objects.all()
            if model is Silence:
                teams, all_teams = request_teams(self.request)
                return objects.filter(
                    Q(rule__team__in=teams)
                    | (
                        Q(rule__isnull=True) | Q(rule__team__isnull=True)
                        if all_teams
                        else Q(pk=None)
                    )
                )
            return _visible(self.request, objects)

        @extend_schema(responses=serializer(many=True))
        def get(self, request: Request) -> Response:
            return Response(serializer(self.get_queryset(), many=True).data)

        @extend_schema(request=serializer, responses={201: serializer})
        def post(self, request: Request) -> Response:
            body = serializer(data=request.data)
            body.is_valid(raise_exception=True)
            _may_write(request, team_of(body.validated_data))
            created = body.save(**({"created_by": request.user} if model is Silence else {}))
            return Response(serializer(created).data, status=status.HTTP_201_CREATED)

    CollectionApi.__name__ = f"{model.__name__}CollectionApi"
    return CollectionApi


AlertRuleListApi = _collection(AlertRule, RuleSerializer, team_of=lambda d: d.get("team"))
SilenceListApi = _collection(
    Silence, SilenceSerializer, team_of=lambda d: d["rule"].team if d.get("rule") else None
)
ChannelListApi = _collection(Channel, ChannelSerializer, team_of=lambda d: d.get("team"))


class AlertRuleDetailApi(APIView):
    required_scopes = ANY_READ
    may_404 = True

    @extend_schema(responses=RuleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            RuleSerializer(get_object_or_404(_visible(request, AlertRule.objects), pk=pk)).data
        )

    @extend_schema(request=RuleSerializer, responses=RuleSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        rule = get_object_or_404(_visible(request, AlertRule.objects), pk=pk)
        _may_write(request, rule.team)
        body = RuleSerializer(rule, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return Response(RuleSerializer(body.save()).data)


class ChannelTestApi(APIView):
    """``POST /api/v1/channels/{id}/test``: send a test message now."""

    required_scopes = ANY_READ
    may_404 = True

    class ResultSerializer(serializers.Serializer):
        delivered = serializers.BooleanField()
        error = serializers.CharField(required=False)

    @extend_schema(request=None, responses={200: ResultSerializer})
    def post(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(_visible(request, Channel.objects), pk=pk)
        _may_write(request, channel.team)
        text = f"FrameOps test message for channel {channel.name}"
        try:
            if channel.kind == ChannelKind.EMAIL:
                from django.core.mail import send_mail

                send_mail(text, text + ".\n", None, [a.strip() for a in channel.target.split(",")])
            else:
                body = {"text": text} if channel.kind == ChannelKind.SLACK else {
                    "version": "4", "status": "firing", "receiver": channel.name, "alerts": [],
                    "groupLabels": {}, "commonLabels": {"alertname": "FrameOpsTest"},
                    "commonAnnotations": {"summary": text}, "externalURL": "", "groupKey": "test",
                    "truncatedAlerts": 0,
                }  # fmt: skip
                _post(channel.target, body, f"frameops-test-{channel.pk}")
        except Exception as exc:
            return Response({"delivered": False, "error": str(exc)[:500]})
        return Response({"delivered": True})
