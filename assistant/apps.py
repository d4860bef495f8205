from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "assistant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from assistant.memory import services as memory_services
        from knowledge.signals import embedding_model_changed

        embedding_model_changed.connect(memory_services.reembed_all, dispatch_uid="memory-reembed")
