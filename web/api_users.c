/*
 * api_users.c - the caller, their API tokens, and (for admins) the users:
 *
 *   GET    /api/v1/me            {"user", "role", "authentication"}
 *   GET    /api/v1/tokens        the caller's tokens (an admin: all)
 *   POST   /api/v1/tokens        {"label"?, "expires_in_s"?} -> 201 with the
 *                                token, shown this once
 *   DELETE /api/v1/tokens/{id}   the caller's token (an admin: any)
 *   GET    /api/v1/users         admins
 *   POST   /api/v1/users         admins: {"name", "role", "password"} -> 201
 *   DELETE /api/v1/users/{name}  admins; not oneself
 *
 * Every change is appended to the audit trail (token_created,
 * token_revoked, user_created, user_deleted) without secrets.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "users.h"

#define API_MAX_TOKEN_LIFE_S (10LL * 365 * 24 * 3600)

int api_me(struct web *w, const struct web_request *req, const char *arg,
           struct web_reply *rep)
{
	(void)arg;
	rep->body = json_pack("{s:s, s:s, s:s}", "user", req->user, "role",
	                      users_role_name(req->role), "authentication",
	                      w->cfg.auth_off ? "off" : "on");
	return rep->body ? 0 : -ENOMEM;
}

/* The body as a JSON object ({} when empty); 1 after a 400 in rep. */
static int api_body_object(const struct web_request *req, json_t **out, struct web_reply *rep)
{
	json_error_t je;
	*out = req->body_len ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je)
	                     : json_object();
	if (json_is_object(*out))
		return 0;
	json_decref(*out);
	*out = NULL;
	return api_error(rep, 400, "body", "must be a JSON object") ? -ENOMEM : 1;
}

static int api_users_missing(struct web *w, struct web_reply *rep)
{
	if (w->ctx.users)
		return 0;
	return api_error(rep, 404, NULL, "no user database on this server") ? -ENOMEM : 1;
}

/* Audits a change that was made; a failure is logged and answered 500. */
static int api_audit_change(struct web *w, const struct web_request *req, const char *action,
                            json_t *detail)
{
	int err = detail ? api_audit(w, req, action, detail, NULL) : -ENOMEM;
	json_decref(detail);
	return err;
}

static json_t *api_token_json(const struct users_token *t)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", t->id, "label", t->label, "user", t->user,
	                 "created", api_time(t->created_us),
	                 "expires", t->expires_us ? api_time(t->expires_us) : json_null());
}

struct api_token_walk {
	const struct web_request *req;
	json_t *list;
};

static int api_token_add(void *arg, const struct users_token *t)
{
	struct api_token_walk *tw = arg;
	if (tw->req->role != WEB_ROLE_ADMIN && strcmp(t->user, tw->req->user))
		return 0;
	json_t *o = api_token_json(t);
	return o && json_array_append_new(tw->list, o) == 0 ? 0 : -ENOMEM;
}

int api_tokens_list(struct web *w, const struct web_request *req, const char *arg,
                    struct web_reply *rep)
{
	(void)arg;
	int r = api_users_missing(w, rep);
	if (r)
		return r < 0 ? r : 0;
	struct api_token_walk tw = { .req = req, .list = json_array() };
	if (!tw.list)
		return -ENOMEM;
	int err = users_token_foreach(w->ctx.users, api_token_add, &tw);
	if (err) {
		json_decref(tw.list);
		return err;
	}
	rep->body = json_pack("{s:o}", "tokens", tw.list);
	return rep->body ? 0 : -ENOMEM;
}

/* label and expires_in_s from the body; 1 after a 400. */
static int api_token_params(json_t *b, const char **label, int64_t *expires_us,
                            struct web_reply *rep)
{
	json_t *l = json_object_get(b, "label"), *e = json_object_get(b, "expires_in_s");
	*label = l ? json_string_value(l) : "";
	if (!*label || strlen(*label) >= USERS_MAX_NAME)
		return api_error(rep, 400, "label", "a string of at most 63 bytes") ? -ENOMEM : 1;
	*expires_us = 0;
	if (e && (!json_is_integer(e) || json_integer_value(e) < 1 ||
	          json_integer_value(e) > API_MAX_TOKEN_LIFE_S))
		return api_error(rep, 400, "expires_in_s", "whole seconds, 1 to 10 years") ? -ENOMEM : 1;
	if (e)
		*expires_us = nvr_now_us() + json_integer_value(e) * 1000000LL;
	return 0;
}

int api_tokens_create(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep)
{
	(void)arg;
	char token[USERS_TOKEN_CHARS];
	struct users_token t;
	const char *label;
	int64_t expires_us;
	json_t *b = NULL;
	int r = api_users_missing(w, rep);
	if (!r)
		r = api_body_object(req, &b, rep);
	if (!r)
		r = api_token_params(b, &label, &expires_us, rep);
	if (r)
		goto out;
	r = users_token_create(w->ctx.users, req->user, label, expires_us, token, &t);
	if (r == -ENOENT || r == -EACCES) {
		r = api_error(rep, 400, NULL, "no enabled user to make a token for"
		              " (is authentication off?)");
		goto out;
	}
	if (r)
		goto out;
	r = api_audit_change(w, req, "token_created",
	                     json_pack("{s:s, s:s}", "token_id", t.id, "label", t.label));
	rep->body = r ? NULL : api_token_json(&t);
	if (rep->body && json_object_set_new(rep->body, "token", json_string(token)))
		r = -ENOMEM;
	rep->status = 201;
	sodium_memzero(token, sizeof token);
	if (!r && !rep->body)
		r = -ENOMEM;
out:
	json_decref(b);
	return r < 0 ? r : 0;
}

int api_tokens_revoke(struct web *w, const struct web_request *req, const char *arg,
                      struct web_reply *rep)
{
	struct users_token t;
	int r = api_users_missing(w, rep);
	if (r)
		return r < 0 ? r : 0;
	r = users_token_get(w->ctx.users, arg, &t);
	if (r == -ENOENT || (!r && req->role != WEB_ROLE_ADMIN && strcmp(t.user, req->user)))
		return api_error(rep, 404, "id", "no such token of yours");
	if (!r)
		r = users_token_revoke(w->ctx.users, t.id);
	if (!r)
		r = api_audit_change(w, req, "token_revoked",
		                     json_pack("{s:s, s:s}", "token_id", t.id, "user", t.user));
	if (!r)
		rep->body = json_pack("{s:s, s:b}", "id", t.id, "revoked", 1);
	return r ? r : rep->body ? 0 : -ENOMEM;
}

static int api_user_add(void *arg, const struct users_user *x)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:o}", "name", x->name, "role",
	                      users_role_name(x->role), "enabled", x->enabled, "created",
	                      api_time(x->created_us));
	return o && json_array_append_new(arg, o) == 0 ? 0 : -ENOMEM;
}

int api_users_list(struct web *w, const struct web_request *req, const char *arg,
                   struct web_reply *rep)
{
	(void)req;
	(void)arg;
	int r = api_users_missing(w, rep);
	if (r)
		return r < 0 ? r : 0;
	json_t *list = json_array();
	if (!list)
		return -ENOMEM;
	int err = users_foreach(w->ctx.users, api_user_add, list);
	if (err) {
		json_decref(list);
		return err;
	}
	rep->body = json_pack("{s:o}", "users", list);
	return rep->body ? 0 : -ENOMEM;
}

int api_users_create(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep)
{
	(void)arg;
	json_t *b = NULL;
	unsigned role;
	int r = api_users_missing(w, rep);
	if (!r)
		r = api_body_object(req, &b, rep);
	if (r)
		goto out;
	const char *name = json_string_value(json_object_get(b, "name"));
	const char *pw = json_string_value(json_object_get(b, "password"));
	if (!users_name_ok(name))
		r = api_error(rep, 400, "name", "1 to 63 of A-Z a-z 0-9 . _ -");
	else if (users_role_parse(json_string_value(json_object_get(b, "role")), &role))
		r = api_error(rep, 400, "role", "viewer, investigator, operator or admin");
	else if (!pw || strlen(pw) < USERS_MIN_PASSWORD || strlen(pw) > USERS_MAX_PASSWORD)
		r = api_error(rep, 400, "password", "8 to 1024 bytes");
	else if ((r = users_add(w->ctx.users, name, role, pw)) == -EEXIST)
		r = api_error(rep, 409, "name", "a user with this name exists");
	else if (!r && !(r = api_audit_change(w, req, "user_created",
	                                      json_pack("{s:s, s:s}", "name", name, "role",
	                                                users_role_name(role))))) {
		rep->body = json_pack("{s:s, s:s}", "name", name, "role", users_role_name(role));
		rep->status = 201;
		r = rep->body ? 0 : -ENOMEM;
	}
out:
	json_decref(b);
	return r < 0 ? r : 0;
}

int api_users_delete(struct web *w, const struct web_request *req, const char *arg,
                     struct web_reply *rep)
{
	int r = api_users_missing(w, rep);
	if (r)
		return r < 0 ? r : 0;
	if (!strcmp(arg, req->user))
		return api_error(rep, 400, "id", "you cannot delete yourself");
	r = users_delete(w->ctx.users, arg);
	if (r == -ENOENT)
		return api_error(rep, 404, "id", "no such user");
	if (!r)
		r = api_audit_change(w, req, "user_deleted", json_pack("{s:s}", "name", arg));
	if (!r)
		rep->body = json_pack("{s:s, s:b}", "name", arg, "deleted", 1);
	return r ? r : rep->body ? 0 : -ENOMEM;
}
