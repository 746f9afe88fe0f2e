from __future__ import annotations

from django.contrib import admin

from finops.placement.models import PlacementMapping


@admin.register(PlacementMapping)
class PlacementMappingAdmin(admin.ModelAdmin):
    list_display = ["model_name", "resolution", "offering", "team", "note", "created_by",
                    "created_at"]  # fmt: skip
    list_filter = ["offering__provider"]
    search_fields = ["model_name", "offering__offering"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
