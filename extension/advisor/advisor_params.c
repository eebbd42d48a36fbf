/*
 * advisor_params.c
 *		Owns the bind values the advisor keeps with a statement captured
 *		through the extended protocol, so that it is costed with values it
 *		actually ran with (a custom plan), not only with the planner's
 *		generic guesses for $1.  A skewed column shows why: "status = $1"
 *		planned generic reads half the table, "status = 'open'" one row in a
 *		hundred.
 *
 * The values are kept as text, by each parameter's type output function,
 * in a fixed buffer: a count, then per parameter its type, a null flag and
 * the text with its terminating zero.  Values that do not fit are not kept
 * (the statement is planned generic, as before).  Encoding runs at the
 * statement's first end, inside the capture's subtransaction (an output
 * function may fail); decoding, when the advisor re-plans, inside its own.
 */
#include "postgres.h"

#include "fmgr.h"
#include "parser/parse_coerce.h"
#include "utils/lsyscache.h"

#include "advisor/advisor_params.h"

/*
 * Write params into buf; the bytes written, 0 when there are none to keep
 * (no parameters, or fetched lazily), -1 when they do not fit.
 */
int
advisor_params_encode(ParamListInfo params, char *buf, int bufsize)
{
	uint16		n;
	int			len = sizeof(uint16);
	int			i;

	if (params == NULL || params->numParams <= 0 || params->paramFetch != NULL ||
		params->numParams > PG_UINT16_MAX)
		return 0;
	n = (uint16) params->numParams;
	memcpy(buf, &n, sizeof(n));
	for (i = 0; i < n; i++)
	{
		ParamExternData *p = &params->params[i];
		char	   *text = NULL;
		int			tlen = 0;
		Oid			out;
		bool		varlena;

		if (!p->isnull && OidIsValid(p->ptype))
		{
			getTypeOutputInfo(p->ptype, &out, &varlena);
			text = OidOutputFunctionCall(out, p->value);
			tlen = strlen(text) + 1;
		}
		if (len + (int) sizeof(Oid) + 1 + tlen > bufsize)
			return -1;
		memcpy(buf + len, &p->ptype, sizeof(Oid));
		len += sizeof(Oid);
		buf[len++] = text ? 'v' : 'n';
		if (text)
		{
			memcpy(buf + len, text, tlen);
			len += tlen;
		}
	}
	return len;
}

/*
 * The values in buf as bound parameters of the given types (those parse
 * analysis gave the statement's $n now); NULL when there are none, or when
 * they were kept for types of another kind than the statement has now.
 */
ParamListInfo
advisor_params_decode(const char *buf, int len, const Oid *types, int ntypes)
{
	ParamListInfo params;
	uint16		n;
	int			pos = sizeof(uint16);
	int			i;

	if (buf == NULL || len < (int) sizeof(uint16))
		return NULL;
	memcpy(&n, buf, sizeof(n));
	if (n != ntypes)
		return NULL;
	params = makeParamList(n);
	for (i = 0; i < n; i++)
	{
		ParamExternData *p = &params->params[i];
		Oid			type;

		if (pos + (int) sizeof(Oid) + 1 > len)
			return NULL;
		memcpy(&type, buf + pos, sizeof(Oid));
		pos += sizeof(Oid);
		/*
		 * A driver may have bound another type than the one analysis gives
		 * $n now (int2 for an int4 column): the text reads as the statement's
		 * type when both are of one category (numbers, strings, ...).
		 */
		if (type != types[i] && TypeCategory(type) != TypeCategory(types[i]))
			return NULL;
		type = types[i];
		p->ptype = type;
		p->pflags = PARAM_FLAG_CONST;
		p->isnull = buf[pos++] == 'n';
		p->value = (Datum) 0;
		if (!p->isnull)
		{
			Oid			in;
			Oid			ioparam;
			int			tlen = strnlen(buf + pos, len - pos);

			if (pos + tlen >= len)
				return NULL;
			getTypeInputInfo(type, &in, &ioparam);
			p->value = OidInputFunctionCall(in, (char *) buf + pos, ioparam, -1);
			pos += tlen + 1;
		}
	}
	return params;
}
