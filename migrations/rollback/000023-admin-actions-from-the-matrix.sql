-- Down for 000023-admin-actions-from-the-matrix.sql.
set lock_timeout = '2s';

drop function marketplace.seller_transfer_admin_actions(text);
