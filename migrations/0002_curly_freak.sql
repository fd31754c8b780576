ALTER TABLE `runs` ADD `replay_of` text;--> statement-breakpoint
CREATE INDEX `runs_tenant_upstream` ON `runs` (`tenant_id`,`upstream_id`);--> statement-breakpoint
CREATE INDEX `events_workflow_type_created` ON `events` (`workflow_id`,`type`,`created_at`);