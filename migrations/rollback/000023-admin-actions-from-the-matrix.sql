-- Down for 000023-admin-actions-from-the-matrix.sql.

drop function marketplace.seller_transfer_admin_actions(text);
