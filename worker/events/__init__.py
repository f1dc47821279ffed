"""An event after its invitation: what invitees were told, revisions, answers, reminders, its calendar."""
