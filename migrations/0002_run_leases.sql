CREATE TABLE `rate_budgets` (
	`key` text PRIMARY KEY NOT NULL,
	`tokens` real NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `runs` ADD `trigger_pending_at` integer;--> statement-breakpoint
ALTER TABLE `runs` ADD `trigger_attempts` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `runs` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `runs` ADD `lease_expires_at` integer;--> statement-breakpoint
ALTER TABLE `runs` ADD `lease_token` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `runs_lease` ON `runs` (`finished_at`,`lease_expires_at`);--> statement-breakpoint
ALTER TABLE `workflows` ADD `trigger_retry` text DEFAULT 'at_most_once' NOT NULL;