CREATE TABLE `key_rate_buckets` (
	`key` text PRIMARY KEY NOT NULL,
	`tokens` real NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `key_rate_buckets_at` ON `key_rate_buckets` (`at`);--> statement-breakpoint
CREATE TABLE `rate_budgets` (
	`key` text PRIMARY KEY NOT NULL,
	`tokens` real NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `trigger_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`workflow_id` text NOT NULL,
	`max_runs` integer NOT NULL,
	`used_runs` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `trigger_tokens_expiry` ON `trigger_tokens` (`expires_at`);--> statement-breakpoint
ALTER TABLE `runs` ADD `trigger_pending_at` integer;--> statement-breakpoint
ALTER TABLE `runs` ADD `trigger_attempts` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `runs` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `runs` ADD `lease_expires_at` integer;--> statement-breakpoint
ALTER TABLE `runs` ADD `lease_token` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `runs` ADD `replay_of` text;--> statement-breakpoint
CREATE INDEX `runs_tenant_upstream` ON `runs` (`tenant_id`,`upstream_id`);--> statement-breakpoint
CREATE INDEX `runs_lease` ON `runs` (`finished_at`,`lease_expires_at`);--> statement-breakpoint
ALTER TABLE `workflows` ADD `trigger_retry` text DEFAULT 'at_most_once' NOT NULL;--> statement-breakpoint
CREATE INDEX `events_workflow_type_created` ON `events` (`workflow_id`,`type`,`created_at`);